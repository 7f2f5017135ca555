"use strict";
(function () {
  // The tenant comes from the host (subdomain or custom domain) or from ?tenant= on this page.
  let tenantHint = new URLSearchParams(location.search).get("tenant");

  async function loadBranding() {
    try {
      const query = tenantHint ? "?tenant=" + encodeURIComponent(tenantHint) : "";
      const branding = await Dash.api("/tenants/branding" + query, { token: null });
      if (!branding.tenant) return;
      Dash.applyBranding(branding.tenant);
      if (branding.tenant.sso) {
        const link = document.getElementById("sso-login");
        link.href = "/api/v1/auth/sso/start?" + new URLSearchParams({ tenant: branding.tenant.slug, landing: "dashboard" });
        link.textContent = "Sign in with " + branding.tenant.name + " single sign-on";
        document.getElementById("sso-row").hidden = false;
      }
    } catch (error) { /* no tenant named by this host: the platform's look */ }
  }

  // The tenant requires 2FA and this user has none: enrol with the token the login answered with (good
  // only for that); enabling completes the login, whose tokens come in its answer.
  async function enrol(enrollmentToken, errorBox) {
    try {
      await Dash.enrolTwoFactor(enrollmentToken, (enabled) => Dash.enter(enabled, Dash.HOME));
    } catch (error) {
      errorBox.textContent = error.message;
      return;
    }
    document.getElementById("login-card").hidden = true;
    document.getElementById("enrol-card").hidden = false;
  }

  async function submit(event) {
    event.preventDefault();
    const errorBox = document.getElementById("login-error");
    errorBox.textContent = "";
    const body = {
      email: document.getElementById("email").value.trim(),
      password: document.getElementById("password").value,
    };
    const code = document.getElementById("code").value.trim();
    if (code) body.code = code;
    const headers = tenantHint ? { "X-Tenant-Id": tenantHint } : {};
    try {
      const result = await Dash.api("/auth/login", { method: "POST", body, headers, token: null });
      Dash.enter(result, result.user.role === "superadmin" ? "/dashboard/tenants" : Dash.HOME);
    } catch (error) {
      if (error.code === "two_factor_enrollment_required") {
        await enrol(error.details.enrollmentToken, errorBox);
        return;
      }
      if (error.code === "two_factor_required") {
        document.getElementById("code-row").hidden = false;
        document.getElementById("code").focus();
      } else if (error.code === "tenant_required") {
        const select = document.getElementById("tenant-choice");
        select.replaceChildren(...(error.details.tenants || []).map((slug) => new Option(slug, slug)));
        document.getElementById("tenant-row").hidden = false;
        tenantHint = select.value;
        select.onchange = () => { tenantHint = select.value; };
      }
      errorBox.textContent = error.message;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    loadBranding();
    document.getElementById("login-form").addEventListener("submit", submit);
  });
})();
