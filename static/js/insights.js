// The insights page's trend: deploys and failed deploys per week (Chart.js, vendored).
document.addEventListener("DOMContentLoaded", () => {
  const canvas = document.getElementById("dora-weeks");
  const data = document.getElementById("dora-weeks-data");
  if (!canvas || !data || typeof Chart === "undefined") return;
  const weeks = JSON.parse(data.textContent);
  new Chart(canvas, {
    type: "bar",
    data: {
      labels: weeks.map((w) => String(w.week)),
      datasets: [
        { label: "Deploys", data: weeks.map((w) => w.deploys), backgroundColor: "#0969da" },
        { label: "Failed", data: weeks.map((w) => w.failed), backgroundColor: "#cf222e" },
      ],
    },
    options: { animation: false, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
});
