// Every page (loaded by base.html).
// 1. Times: the server writes <time datetime="ISO" data-time="relative|exact">UTC text</time>
//    ({% timestamp %}); here each one is shown in the reader's time zone, as "3 min ago"
//    with the exact local time on hover (or the other way round for data-time="exact"),
//    also in what htmx swaps in, and the relative texts move on each minute.
//    The browser's zone is kept in a cookie for the clock times the server writes (log lines).
// 2. Dialogs: <button commandfor="ID" command="show-modal"> opens <dialog id="ID"> natively;
//    browsers without invoker commands get the same from a click handler.
// 3. Run forms: the submit button's text follows the "Dry run" box.
(function () {
  "use strict";

  const pad = (n, width) => String(n).padStart(width || 2, "0");

  function zoneName(date) {
    try {
      const part = new Intl.DateTimeFormat("en", { timeZoneName: "short" })
        .formatToParts(date)
        .find((p) => p.type === "timeZoneName");
      if (part) return part.value;
    } catch (e) {
      // An old browser: the offset below says the same.
    }
    const offset = -date.getTimezoneOffset();
    return "UTC" + (offset >= 0 ? "+" : "-") + pad(Math.floor(Math.abs(offset) / 60)) + ":" + pad(Math.abs(offset) % 60);
  }

  // 2026-11-27 13:39:05 GMT+9 (the fraction of the ISO text, when asked for, is kept whole:
  // a Date holds milliseconds only).
  function exactLocal(date, iso, withFraction) {
    let text = date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      " " + pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
    const fraction = withFraction && /\.(\d+)/.exec(iso);
    if (fraction) text += "." + fraction[1];
    return text + " " + zoneName(date);
  }

  function relative(date, now) {
    const seconds = Math.round((now - date) / 1000);
    const future = seconds < 0;
    const s = Math.abs(seconds);
    const say = (n, unit) => (future ? "in " + n + " " + unit : n + " " + unit + " ago");
    if (s < 45) return future ? "in a moment" : "just now";
    const minutes = Math.round(s / 60);
    if (minutes < 60) return say(minutes, "min");
    const hours = Math.round(s / 3600);
    if (hours < 24) return say(hours, hours === 1 ? "hour" : "hours");
    const days = Math.round(s / 86400);
    if (days < 30) return say(days, days === 1 ? "day" : "days");
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate());
  }

  function showTime(el, now) {
    const iso = el.getAttribute("datetime");
    const date = new Date(iso);
    if (isNaN(date)) return;
    const exact = exactLocal(date, iso, el.dataset.time === "exact");
    const ago = relative(date, now);
    if (el.dataset.time === "exact") {
      el.textContent = exact;
      el.title = ago;
    } else {
      el.textContent = ago;
      el.title = exact;
    }
  }

  function showTimes(root) {
    const now = Date.now();
    if (root.matches && root.matches("time[data-time]")) showTime(root, now);
    if (root.querySelectorAll) root.querySelectorAll("time[data-time]").forEach((el) => showTime(el, now));
  }

  function openDialogs(root) {
    if ("command" in HTMLButtonElement.prototype) return; // the browser does it
    root.querySelectorAll("button[commandfor][command=show-modal]").forEach(function (button) {
      if (button.dataset.dialogBound) return;
      button.dataset.dialogBound = "1";
      button.addEventListener("click", function () {
        const dialog = document.getElementById(button.getAttribute("commandfor"));
        if (dialog && dialog.showModal) dialog.showModal();
      });
    });
  }

  // Forms that filter by day say which time zone their days are in.
  function fillTimeZones(root) {
    let zone = "";
    try {
      zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      return;
    }
    if (zone) root.querySelectorAll("input[data-time-zone]").forEach((input) => (input.value = zone));
  }

  // The server writes the log's clock times in the zone this cookie names (see
  // portal/middleware.py), so the page and the download agree.
  function rememberTimeZone() {
    let zone = "";
    try {
      zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      return;
    }
    if (zone && document.cookie.indexOf("pushbutton_tz=" + zone) === -1) {
      document.cookie = "pushbutton_tz=" + zone + "; path=/; max-age=31536000; SameSite=Lax";
    }
  }

  function enhance(root) {
    showTimes(root);
    openDialogs(root);
    fillTimeZones(root);
  }

  // 3. A run form's button says what pressing it does: a dry run starts at once (no
  //    confirmation page, no "…").
  document.addEventListener("change", function (event) {
    if (event.target.id !== "dry-run") return;
    const button = event.target.form && event.target.form.querySelector("[data-dry-run-label]");
    if (button) button.textContent = event.target.checked ? button.dataset.dryRunLabel : button.dataset.label;
  });

  rememberTimeZone();
  enhance(document);
  document.addEventListener("htmx:load", (event) => enhance(event.detail.elt));
  setInterval(() => showTimes(document), 60 * 1000);
})();
