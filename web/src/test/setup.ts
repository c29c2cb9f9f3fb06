// Runs before every test file: unmount rendered trees, forget sessions and stored values between
// tests, and stand in for full-page navigations (jsdom cannot navigate; tests spy on this).
import { cleanup } from '@testing-library/react';
import { afterEach, beforeEach, vi } from 'vitest';
import * as session from '../session';
import { browserNavigation } from '../signin';

beforeEach(() => {
  session.resetForTests('signed-out');
  vi.spyOn(browserNavigation, 'assign').mockImplementation(() => undefined);
});

afterEach(() => {
  cleanup();
  localStorage.clear();
  session.resetForTests('signed-out');
});
