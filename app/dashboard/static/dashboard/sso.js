"use strict";
(function () {
  // The identity provider sent the browser back here (GET /auth/sso/start?landing=dashboard): hand
  // what it sent to the API, which checks it and answers like a login.
  document.addEventListener("DOMContentLoaded", async () => {
    const query = location.search;
    history.replaceState(null, "", location.pathname); // the code is good once: out of the history
    try {
      const result = await Dash.api("/auth/sso/callback" + query, { token: null });
      Dash.enter(result, Dash.HOME);
    } catch (error) {
      document.getElementById("sso-error").textContent = error.message;
      document.getElementById("back-to-login").hidden = false;
    }
  });
})();
