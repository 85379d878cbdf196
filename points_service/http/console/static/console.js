// Progressive: every page works without this. With it, choosing a province fills the
// city list with that province's cities (and a city the county list) at once, instead
// of after the next "Show". Nothing is submitted until the user asks.
(function () {
  var form = document.querySelector("form[data-regions]");
  if (!form) return;
  var tree = JSON.parse(form.getAttribute("data-regions"));
  function fill(select, parent) {
    var keep = select.options[0];
    select.innerHTML = "";
    select.appendChild(keep);
    (tree[parent] || []).forEach(function (pair) {
      var option = document.createElement("option");
      option.value = pair[0];
      option.textContent = pair[1];
      select.appendChild(option);
    });
    select.value = "";
    select.disabled = !parent;
  }
  var province = form.querySelector("#province");
  var city = form.querySelector("#city");
  var county = form.querySelector("#county");
  province.addEventListener("change", function () { fill(city, province.value); fill(county, ""); });
  city.addEventListener("change", function () { fill(county, city.value); });
})();
