// Run page: the live log.
// - It follows the end while lines arrive; scrolling up pauses that, "Resume following"
//   (or scrolling back to the end) resumes it, also after the tab was hidden.
// - #L123 opens any line, highlighted: when it is not among the lines the page holds,
//   the part of the log around it is loaded in their place.
// - Search asks the server for every match in the whole log, highlights the matches in
//   the lines shown, counts those that arrive later, and moves with Next/Previous.
// - Plays and tasks fold, show how long they took, and stand out when a host failed.
(function () {
  "use strict";
  const log = document.getElementById("log");
  if (!log) return;
  const followButton = document.getElementById("log-follow");
  const form = document.getElementById("log-search");
  const input = document.getElementById("log-q");
  const counter = document.getElementById("log-count");
  const TRIM_AT = 4000; // while following, older lines beyond this leave the page...
  const KEEP = 3000; // ...down to this many ("Show earlier lines" brings them back)
  const LINK = /^#L(\d+)$/;

  let follow = !LINK.test(location.hash);
  let lastTop = 0;
  let jumpedTo = null; // where the last jump scrolled the log to
  let search = null; // {q, needle, matches: [[line, k]], total, later, upto, extra: Set, index}
  let searchSeq = 0;

  const number = (el) => Number(el.id.slice(1));
  const isLine = (el) => el && el.classList.contains("line");
  const later = () => document.getElementById("log-later");

  function lastLine() {
    let el = log.lastElementChild;
    while (el && !isLine(el)) el = el.previousElementSibling;
    return el;
  }

  // --- following -------------------------------------------------------------------
  function setFollow(on) {
    follow = on;
    followButton.hidden = on;
  }

  function toBottom() {
    log.scrollTop = log.scrollHeight;
    lastTop = log.scrollTop;
    jumpedTo = null;
  }

  function jump(el) {
    setFollow(false);
    el.scrollIntoView({ block: "center" });
    lastTop = jumpedTo = log.scrollTop;
  }

  log.addEventListener("scroll", function () {
    const top = log.scrollTop;
    if (top === jumpedTo) return; // the scroll of a jump (to a line, a match) pauses only
    if (top + log.clientHeight >= log.scrollHeight - 8 && !later()) setFollow(true);
    else if (top < lastTop) setFollow(false); // only the reader scrolls up
    lastTop = top;
  });

  followButton.addEventListener("click", async function () {
    if (later()) await loadWindow("line=tail"); // a window in the middle: back to the end
    if (LINK.test(location.hash)) history.replaceState(null, "", location.pathname + location.search);
    setFollow(true);
    toBottom();
  });

  // Hidden tabs get few timers and no frames: lines keep arriving (and are scrolled to)
  // meanwhile, and the end is shown again as soon as the tab is.
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && follow) toBottom();
  });
  window.addEventListener("focus", function () {
    if (follow) toBottom();
  });

  // Keep the page from holding an ever longer log while it follows a big run.
  function trim() {
    const all = log.querySelectorAll(":scope > .line");
    if (all.length <= TRIM_AT) return;
    const drop = all.length - KEEP;
    for (let i = 0; i < drop; i++) all[i].remove();
    const first = number(all[drop]);
    const old = document.getElementById("log-earlier");
    if (old) old.remove();
    log.insertAdjacentHTML(
      "afterbegin",
      '<button type="button" class="link" id="log-earlier" hx-get="' + log.dataset.earlier +
        "?before=" + first + '" hx-swap="outerHTML">Show earlier lines (before ' + first + ")</button>"
    );
    htmx.process(log.firstElementChild);
  }

  // --- new lines from the poller -------------------------------------------------------
  // The poller's lines are appended here, not by htmx: a line already shown is skipped,
  // and after a gap (a window of the log far from its end) none is, until "Show later
  // lines" has reached the end.
  log.addEventListener("htmx:oobBeforeSwap", function (event) {
    if (event.detail.target !== log) return;
    event.detail.shouldSwap = false;
    append(Array.from(event.detail.fragment.querySelectorAll(".line")));
  });

  function append(incoming) {
    if (!incoming.length || later()) return;
    const last = lastLine();
    let next = last ? number(last) + 1 : number(incoming[0]);
    for (const el of incoming) {
      const n = number(el);
      if (n < next) continue; // shown already
      if (n > next) {
        addLaterButton(next - 1);
        break;
      }
      log.appendChild(el);
      if (search) highlight(el);
      next = n + 1;
    }
    sections();
    showCount();
    if (follow) {
      trim();
      toBottom();
    }
  }

  function addLaterButton(after) {
    log.insertAdjacentHTML(
      "beforeend",
      '<button type="button" class="link" id="log-later" hx-get="' + log.dataset.later +
        "?after=" + after + '" hx-swap="outerHTML">Show later lines (after ' + after + ")</button>"
    );
    htmx.process(later());
  }

  // Earlier and later lines, loaded by their buttons.
  log.addEventListener("htmx:afterSettle", refresh);

  function refresh() {
    if (search) log.querySelectorAll(":scope > .line").forEach(highlight);
    sections();
    showCount();
  }

  // --- a window of the log around a line ----------------------------------------------
  async function loadWindow(query) {
    const response = await fetch(log.dataset.window + "?" + query);
    if (!response.ok) return;
    log.innerHTML = await response.text();
    htmx.process(log);
    refresh();
  }

  // Shows line n (loading the lines around it first when the page does not hold it).
  async function show(n) {
    let el = document.getElementById("L" + n);
    if (!el) {
      await loadWindow("line=" + n);
      el = document.getElementById("L" + n);
    }
    if (!el) return null;
    if (el.hidden) {
      log.querySelectorAll(".folded").forEach((head) => fold(head, false));
      sections();
    }
    jump(el);
    return el;
  }

  async function goToHash() {
    const match = LINK.exec(location.hash);
    if (!match) return;
    const el = await show(Number(match[1]));
    log.querySelectorAll(".line.target").forEach((line) => line.classList.remove("target"));
    if (el) el.classList.add("target");
  }
  window.addEventListener("hashchange", goToHash);

  // --- plays and tasks: folding, durations, failures ------------------------------------
  function fold(head, folded) {
    head.classList.toggle("folded", folded);
    head.querySelector(".fold").setAttribute("aria-expanded", String(!folded));
  }

  log.addEventListener("click", function (event) {
    const button = event.target.closest(".fold");
    if (!button) return;
    const head = button.closest(".line");
    fold(head, !head.classList.contains("folded"));
    sections();
  });

  const time = (el) => Date.parse(el.querySelector("time") ? el.querySelector("time").dateTime : "");

  // A duration as people write it, as the server does (apps/runs/templatetags/run_tags).
  function duration(ms) {
    if (!(ms >= 0)) return "";
    const s = ms / 1000;
    if (s < 10) return (Math.floor(s * 10) / 10).toFixed(1) + " s";
    if (s < 60) return Math.floor(s) + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + " min " + Math.floor(s % 60) + " s";
    const h = Math.floor(m / 60);
    if (h < 24) return h + " h " + (m % 60) + " min";
    return Math.floor(h / 24) + " d " + (h % 24) + " h";
  }

  // The run's duration ticks while it goes (the status is sent again with each update).
  function tick() {
    document.querySelectorAll(".duration[data-since]:not([data-until])").forEach(function (el) {
      const text = duration(Date.now() - Date.parse(el.dataset.since));
      if (text && el.textContent !== text) el.textContent = text;
    });
  }
  setInterval(tick, 1000);

  // "Jump to the error" (a #L link) jumps again when the address has it already.
  document.addEventListener("click", function (event) {
    const link = event.target.closest && event.target.closest("a.jump");
    if (link && link.hash === location.hash) {
      event.preventDefault();
      goToHash();
    }
  });

  // One pass over the lines: a section ends where the next one (or the recap) starts.
  function sections() {
    let play = null, task = null, playFolded = false, taskFolded = false;
    const end = function (head, el) {
      const text = head && duration(time(el) - time(head));
      if (text) head.querySelector(".dur").textContent = text;
    };
    for (const el of log.children) {
      if (!isLine(el)) continue;
      const kind = el.classList;
      let hidden = playFolded || taskFolded;
      if (kind.contains("head")) {
        end(task, el);
        task = null;
        taskFolded = false;
        if (!kind.contains("task")) {
          end(play, el);
          play = null;
          playFolded = false;
        }
        if (kind.contains("play")) (play = el), (playFolded = kind.contains("folded"));
        if (kind.contains("task")) (task = el), (taskFolded = kind.contains("folded"));
        hidden = kind.contains("task") && playFolded;
      } else if (kind.contains("failed")) {
        if (task) task.classList.add("has-failed");
        if (play) play.classList.add("has-failed");
      }
      if (el.hidden !== hidden) el.hidden = hidden;
    }
  }

  // --- search ---------------------------------------------------------------------------
  function unmark(el) {
    el.querySelectorAll("mark").forEach((mark) => mark.replaceWith(mark.textContent));
    const txt = el.querySelector(".txt");
    if (txt) txt.normalize();
    delete el.dataset.q;
  }

  function highlight(el) {
    if (el.dataset.q === search.q) return;
    if (el.dataset.q !== undefined) unmark(el);
    el.dataset.q = search.q;
    const txt = el.querySelector(".txt");
    if (!txt || !txt.textContent.toLowerCase().includes(search.needle)) return;
    const walker = document.createTreeWalker(txt, NodeFilter.SHOW_TEXT);
    const nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    let count = 0;
    for (const node of nodes) {
      const text = node.nodeValue;
      const lower = text.toLowerCase();
      let at = lower.indexOf(search.needle);
      if (at < 0) continue;
      const parts = document.createDocumentFragment();
      let from = 0;
      while (at >= 0) {
        const mark = document.createElement("mark");
        mark.className = "hit";
        mark.textContent = text.slice(at, at + search.needle.length);
        parts.append(text.slice(from, at), mark);
        count++;
        from = at + search.needle.length;
        at = lower.indexOf(search.needle, from);
      }
      parts.append(text.slice(from));
      node.replaceWith(parts);
    }
    // Lines after those the server searched arrived since: they count here.
    const n = number(el);
    if (count && n > search.upto && !search.extra.has(n)) {
      search.extra.add(n);
      for (let k = 0; k < count; k++) search.matches.push([n, k]);
      search.later += count;
    }
  }

  function showCount() {
    if (!search) counter.textContent = "";
    else {
      // Until the server has counted them all: the matches listed, and more.
      const total = search.total === null ? null : search.total + search.later;
      const shown = total === null ? search.matches.length + "+" : total;
      if (total === 0) counter.textContent = "No matches";
      else
        counter.textContent =
          (search.index >= 0 ? search.index + 1 + " of " : "") +
          shown + (total === 1 ? " match" : " matches");
    }
  }

  async function runSearch() {
    const q = input.value;
    const seq = ++searchSeq;
    search = null;
    log.querySelectorAll(".line[data-q]").forEach(unmark);
    if (!q.trim()) return showCount();
    counter.textContent = "Searching…";
    const response = await fetch(log.dataset.search + "?q=" + encodeURIComponent(q));
    const data = await response.json().catch(() => ({ detail: "The search failed." }));
    if (seq !== searchSeq) return; // a newer search started meanwhile
    if (!response.ok) {
      counter.textContent = data.detail;
      return;
    }
    search = { q: q, needle: q.toLowerCase(), matches: [], total: data.total, later: 0, upto: data.upto, extra: new Set(), index: -1 };
    for (const [line, count] of data.hits) for (let k = 0; k < count; k++) search.matches.push([line, k]);
    refresh();
    if (data.count_url) countAll(seq, data.count_url);
  }

  // The first matches come at once; their count (every match in the log) after them.
  async function countAll(seq, url) {
    const response = await fetch(url);
    const data = await response.json().catch(() => null);
    if (seq !== searchSeq || !search || !response.ok || !data) return;
    search.total = data.total;
    showCount();
  }

  async function move(step) {
    if (!search || search.q !== input.value) await runSearch();
    if (!search || !search.matches.length) return;
    const total = search.matches.length;
    search.index = (search.index + step + total) % total;
    const [n, k] = search.matches[search.index];
    showCount();
    const el = await show(n);
    log.querySelectorAll("mark.current").forEach((mark) => mark.classList.remove("current"));
    const mark = el && el.querySelectorAll("mark.hit")[k];
    if (mark) {
      mark.classList.add("current");
      jump(mark);
    }
  }

  let typing = null;
  input.addEventListener("input", function () {
    clearTimeout(typing);
    typing = setTimeout(runSearch, 250);
  });
  input.addEventListener("keydown", function (event) {
    if (event.key !== "Enter") return;
    event.preventDefault();
    clearTimeout(typing);
    move(event.shiftKey ? -1 : 1);
  });
  form.addEventListener("submit", (event) => event.preventDefault());
  document.getElementById("log-next").addEventListener("click", () => move(1));
  document.getElementById("log-prev").addEventListener("click", () => move(-1));

  // --- start ----------------------------------------------------------------------------
  sections();
  setFollow(follow);
  tick();
  if (follow) toBottom();
  else goToHash();
})();
