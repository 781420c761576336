"use strict";
// Signs in with a JSON POST (which another site cannot make a browser send); the session
// cookie comes back HttpOnly and SameSite=Strict, then the console's page opens.
const form = document.getElementById("login-form");
const error = document.getElementById("login-error");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  const body = JSON.stringify({
    name: document.getElementById("login-name").value,
    password: document.getElementById("login-password").value,
  });
  try {
    const response = await fetch("/api/login", {
      method: "POST", headers: { "Content-Type": "application/json" }, body, credentials: "same-origin",
    });
    const answer = await response.json();
    if (!response.ok) {
      error.textContent = answer.error || response.statusText;
      return;
    }
    window.location.href = "/";
  } catch (err) {
    error.textContent = `Could not reach the console: ${err.message || err}`;
  }
});
