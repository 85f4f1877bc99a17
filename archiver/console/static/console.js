// The console's only script: play (asks the server for a checked, audited grant,
// then hands the audio element its URL) and "select all" in the results.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll("input.pick").forEach(function (box) { box.checked = all.checked; });
    });
  }
  // One reason per visit: what is typed in one reason field fills the others
  // (play, download, hold of the same call); the server remembers it too.
  var reasons = document.querySelectorAll("input.reason-input");
  reasons.forEach(function (field) {
    field.addEventListener("input", function () {
      reasons.forEach(function (other) { if (other !== field) { other.value = field.value; } });
    });
  });
  var form = document.getElementById("play-form");
  if (!form) { return; }
  var player = document.getElementById("player");
  var error = document.getElementById("play-error");
  var integrity = document.getElementById("integrity");
  var state = document.getElementById("integrity-state");
  // Play checks the recording: the page shows that check's outcome, not the one
  // it was rendered with.
  function showCheck(good, detail) {
    if (!integrity || !state) { return; }
    var span = document.createElement("span");
    span.className = good ? "good" : "bad";
    span.textContent = good ? integrity.dataset.intact : integrity.dataset.damaged + ": " + detail;
    state.replaceChildren(span);
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    error.hidden = true;
    var body = new URLSearchParams(new FormData(form));
    fetch(form.dataset.play, {
      method: "POST",
      headers: { "X-CSRF-Token": form.dataset.csrf },
      body: body,
      credentials: "same-origin"
    }).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = JSON.parse(text); } catch (e) { data = { error: text }; }
        if (response.status === 409 && data.error) { showCheck(false, data.error); }
        if (!response.ok || !data.src) { throw new Error(data.error || text); }
        showCheck(true, "");
        player.src = data.src;
        player.hidden = false;
        player.load();
      });
    }).catch(function (failure) {
      error.textContent = failure.message;
      error.hidden = false;
      player.hidden = true;
    });
  });
});
