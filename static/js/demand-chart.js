/* Demand against supply per pool, drawn from the figures embedded with json_script.
   The table below carries every figure; the chart is a picture of it. */
(function () {
  "use strict";
  function draw() {
    var source = document.getElementById("demand-chart-data");
    if (!window.Chart || !source) return;
    var data = JSON.parse(source.textContent);
    new Chart(document.getElementById("demand-chart"), {
      type: "bar",
      data: {labels: data.labels, datasets: [
        {label: "Demand (registered or ordered)", data: data.demand},
        {label: "Delivered", data: data.delivered}
      ]},
      options: {animation: false, responsive: true}
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
