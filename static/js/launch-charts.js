/* The launch overview's charts, drawn from the figures embedded with json_script.
   Every figure is also in the tables beside them; the charts are pictures of them.
   The last-hour chart lives in the polled pulse panel: each swap brings new figures and
   the chart is drawn again from them. */
(function () {
  "use strict";
  // The chart fills its .chart-box (full width, a fixed height in the stylesheet).
  var base = {animation: false, responsive: true, maintainAspectRatio: false};
  // Counts of orders: ticks at whole numbers only, never "0.5 orders".
  var wholeY = {beginAtZero: true, ticks: {precision: 0}};
  var rateChart = null;

  function drawLastHour() {
    var source = document.getElementById("launch-last-hour");
    var canvas = document.getElementById("rate-chart");
    if (!window.Chart || !source || !canvas) return;
    var data = JSON.parse(source.textContent);
    if (rateChart) rateChart.destroy();
    rateChart = new Chart(canvas, {
      type: "line",
      data: {labels: data.labels, datasets: [
        {label: "Orders per minute", data: data.counts, pointRadius: 0, borderWidth: 2, fill: true}
      ]},
      options: Object.assign({}, base, {
        scales: {y: wholeY, x: {ticks: {maxTicksLimit: 13}}},
        plugins: {legend: {display: false}}
      })
    });
  }

  function draw() {
    drawLastHour();
    var source = document.getElementById("launch-charts-data");
    if (!window.Chart || !source) return;
    var data = JSON.parse(source.textContent);
    new Chart(document.getElementById("status-chart"), {
      type: "bar",
      data: {labels: data.by_status.labels, datasets: [{label: "Orders", data: data.by_status.counts}]},
      options: Object.assign({}, base, {scales: {y: wholeY}, plugins: {legend: {display: false}}})
    });
    var s = data.stock_vs_demand;
    new Chart(document.getElementById("supply-chart"), {
      type: "bar",
      data: {labels: s.labels, datasets: [
        {label: "Registered", data: s.registered, stack: "registered"},
        {label: "Ordered", data: s.ordered, stack: "ordered"},
        {label: "Served (allocated or collected)", data: s.served, stack: "supply"},
        {label: "Free now (online and stores)", data: s.available, stack: "supply"}
      ]},
      options: Object.assign({}, base, {
        scales: {x: {stacked: true}, y: {stacked: true, beginAtZero: true, ticks: {precision: 0}}}
      })
    });
  }

  // After an outerHTML swap the canvas is a new element: draw on it (a no-op elsewhere).
  document.addEventListener("htmx:afterSettle", drawLastHour);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
