import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { BrowserRouter } from 'react-router-dom';
import App from './App';
import { registerServiceWorker } from './registerServiceWorker';
import * as session from './session';
import './styles.css';

const root = document.getElementById('root');
if (!root) throw new Error('index.html has no #root element');

createRoot(root).render(
  <StrictMode>
    <BrowserRouter>
      <App />
    </BrowserRouter>
  </StrictMode>,
);

// On the tracker's origin only the network console runs (with the tracker's own session).
const onTracker = window.location.pathname.startsWith('/console/network');
if (!onTracker) {
  // Ask the gateway for the session (its HttpOnly cookie) and keep the in-memory token fresh.
  session.start();
  registerServiceWorker();
}
