// Content-Security-Policy checks shared by the browser tests: every page reports each
// `securitypolicyviolation` event to the console, and the tests fail on any such report or
// on Chromium's own "Refused to … Content Security Policy" console errors. This covers the
// tracker's own pages on the way through sign-in too (their CSP: `default-src 'none'`, a
// `form-action` that allows the redirect back to registered nodes, `frame-ancestors 'none'`).

/** What is missing from a Content-Security-Policy header that every page must have (empty: nothing). */
export function missingCsp(header, { formAction = false } = {}) {
  const csp = header ?? '';
  const missing = [];
  if (!csp.includes("script-src 'self'")) missing.push("script-src 'self'");
  if (!csp.includes("frame-ancestors 'none'")) missing.push("frame-ancestors 'none'");
  if (formAction && !csp.includes('form-action')) missing.push('form-action');
  return missing;
}

/** Runs in every page before its scripts (Playwright init script, exempt from the CSP). */
export function reportCspViolations() {
  document.addEventListener('securitypolicyviolation', (e) => {
    console.error(
      `CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile || '?'}:${e.lineNumber}`,
    );
  });
}

/** Whether a console message reports a CSP violation. */
export function isCspViolation(text) {
  return text.startsWith('CSP violation:') || /Content Security Policy/i.test(text);
}
