/* The launch overview's charts, drawn from the figures embedded with json_script.
   Every figure is also in the tables beside them; the charts are pictures of them. */
(function () {
  "use strict";
  function draw() {
    var source = document.getElementById("launch-charts-data");
    if (!window.Chart || !source) return;
    var data = JSON.parse(source.textContent);
    var base = {animation: false, responsive: true, maintainAspectRatio: true};
    var rate = document.getElementById("rate-chart");
    if (rate) {
      new Chart(rate, {
        type: "line",
        data: {labels: data.orders_over_time.labels, datasets: [
          {label: "Orders per " + data.orders_over_time.unit, data: data.orders_over_time.counts,
           pointRadius: 0, borderWidth: 2, fill: true}
        ]},
        options: Object.assign({}, base, {scales: {y: {beginAtZero: true}}, plugins: {legend: {display: false}}})
      });
    }
    new Chart(document.getElementById("status-chart"), {
      type: "bar",
      data: {labels: data.by_status.labels, datasets: [{label: "Orders", data: data.by_status.counts}]},
      options: Object.assign({}, base, {scales: {y: {beginAtZero: true}}, plugins: {legend: {display: false}}})
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
      options: Object.assign({}, base, {scales: {x: {stacked: true}, y: {stacked: true, beginAtZero: true}}})
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
