// Run page: keep the log scrolled to its end while new lines arrive,
// unless the reader scrolled up to read.
(function () {
  const log = document.getElementById("log");
  if (!log) return;
  let follow = !location.hash;
  log.addEventListener("scroll", function () {
    follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
  });
  document.body.addEventListener("htmx:afterSettle", function () {
    if (follow) log.scrollTop = log.scrollHeight;
  });
  if (follow) log.scrollTop = log.scrollHeight;
})();
