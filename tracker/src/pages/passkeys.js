// Passkeys on the tracker's pages: sign in (#passkey-sign-in) and add one (#add-passkey).
// The only script the pages load (CSP: script-src 'self'); it talks to the tracker only.
"use strict";

(function () {
  const b64 = {
    // base64url (with or without padding) -> ArrayBuffer
    decode(s) {
      const t = s.replace(/-/g, "+").replace(/_/g, "/");
      const bin = atob(t + "===".slice((t.length + 3) % 4));
      const out = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
      return out.buffer;
    },
    // ArrayBuffer -> base64url without padding
    encode(buf) {
      const bytes = new Uint8Array(buf);
      let bin = "";
      for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
      return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    },
  };

  function status(text) {
    const el = document.getElementById("passkey-status");
    if (el) el.textContent = text;
  }

  function csrf() {
    const el = document.querySelector("input[name=csrf], #csrf");
    return el ? el.value : "";
  }

  async function post(path, body) {
    const res = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrf() },
      body: JSON.stringify(body),
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(data.message || "the tracker refused (" + res.status + ")");
    return data;
  }

  function creationOptions(o) {
    const pk = o.publicKey;
    pk.challenge = b64.decode(pk.challenge);
    pk.user.id = b64.decode(pk.user.id);
    (pk.excludeCredentials || []).forEach((c) => { c.id = b64.decode(c.id); });
    return { publicKey: pk };
  }

  function requestOptions(o) {
    const pk = o.publicKey;
    pk.challenge = b64.decode(pk.challenge);
    (pk.allowCredentials || []).forEach((c) => { c.id = b64.decode(c.id); });
    return { publicKey: pk };
  }

  async function addPasskey() {
    try {
      status("Follow your browser's prompt…");
      const start = await post("/passkeys/register/start", {});
      const cred = await navigator.credentials.create(creationOptions(start.options));
      const credential = {
        id: cred.id,
        rawId: b64.encode(cred.rawId),
        type: cred.type,
        extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
        response: {
          attestationObject: b64.encode(cred.response.attestationObject),
          clientDataJSON: b64.encode(cred.response.clientDataJSON),
          transports: cred.response.getTransports ? cred.response.getTransports() : undefined,
        },
      };
      await post("/passkeys/register/finish", { ceremony: start.ceremony, credential });
      status("Passkey added.");
      window.location.reload();
    } catch (e) {
      status("No passkey added: " + e.message);
    }
  }

  async function signIn() {
    try {
      const email = (document.getElementById("email") || {}).value || "";
      if (!email) { status("Type your email first."); return; }
      const nextEl = document.querySelector("input[name=next]");
      status("Follow your browser's prompt…");
      const start = await post("/passkeys/login/start", { email });
      const cred = await navigator.credentials.get(requestOptions(start.options));
      const r = cred.response;
      const credential = {
        id: cred.id,
        rawId: b64.encode(cred.rawId),
        type: cred.type,
        extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
        response: {
          authenticatorData: b64.encode(r.authenticatorData),
          clientDataJSON: b64.encode(r.clientDataJSON),
          signature: b64.encode(r.signature),
          userHandle: r.userHandle ? b64.encode(r.userHandle) : null,
        },
      };
      const done = await post("/passkeys/login/finish", {
        ceremony: start.ceremony,
        credential,
        next: nextEl ? nextEl.value : "/account",
      });
      window.location.assign(done.redirect || "/account");
    } catch (e) {
      status("Not signed in: " + e.message);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const add = document.getElementById("add-passkey");
    if (add) add.addEventListener("click", addPasskey);
    const sign = document.getElementById("passkey-sign-in");
    if (sign) sign.addEventListener("click", signIn);
  });
})();
