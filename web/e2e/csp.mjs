// Content-Security-Policy checks shared by the browser tests: every page reports each
// `securitypolicyviolation` event to the console, and the tests fail on any such report or
// on Chromium's own "Refused to … Content Security Policy" console errors.

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
