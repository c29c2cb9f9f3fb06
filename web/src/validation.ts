/**
 * Client-side checks for the account forms. They catch typos before a round
 * trip; the tracker validates again and its answer is the one that counts.
 */

/** The tracker's minimum password length for new accounts. */
export const MIN_PASSWORD_LENGTH = 10;

// Deliberately loose: something@something.tld, no spaces. The verification email is the real test.
const EMAIL_SHAPE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export type FieldErrors<K extends string> = Partial<Record<K, string>>;

export function checkEmail(value: string): string | undefined {
  const v = value.trim();
  if (v === '') return 'Enter your email address.';
  if (!EMAIL_SHAPE.test(v)) return 'Enter an email address like name@example.com.';
  return undefined;
}

/** For signing in: any non-empty password (old accounts may predate the length rule). */
export function checkPasswordPresent(value: string): string | undefined {
  return value === '' ? 'Enter your password.' : undefined;
}

/** For new accounts. */
export function checkNewPassword(value: string): string | undefined {
  if (value === '') return 'Choose a password.';
  if ([...value].length < MIN_PASSWORD_LENGTH) {
    return `Use at least ${MIN_PASSWORD_LENGTH} characters.`;
  }
  return undefined;
}

export function checkDisplayName(value: string): string | undefined {
  return value.trim() === '' ? 'Enter the name other viewers will see.' : undefined;
}

/** Drop the keys whose check passed; an empty result means the form is valid. */
export function collectErrors<K extends string>(
  checks: Record<K, string | undefined>,
): FieldErrors<K> {
  const errors: FieldErrors<K> = {};
  for (const key of Object.keys(checks) as K[]) {
    const message = checks[key];
    if (message !== undefined) errors[key] = message;
  }
  return errors;
}

/** Move focus to the first field (in `order`) that has an error, so it is read out. */
export function focusFirstError<K extends string>(errors: FieldErrors<K>, order: readonly K[], idOf: (k: K) => string): void {
  const first = order.find((k) => errors[k] !== undefined);
  if (first !== undefined) document.getElementById(idOf(first))?.focus();
}
