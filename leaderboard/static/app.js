// The leaderboard's only script: sorting and filtering tables. Pages work without it.
"use strict";

function sortTable(th) {
  const table = th.closest("table");
  const key = th.dataset.key;
  const descending = th.getAttribute("aria-sort") !== "descending";
  for (const other of table.querySelectorAll("th[aria-sort]")) {
    other.removeAttribute("aria-sort");
  }
  th.setAttribute("aria-sort", descending ? "descending" : "ascending");
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const value = (row) => {
    const cell = row.querySelector('td[data-key="' + CSS.escape(key) + '"]');
    const v = cell ? parseFloat(cell.dataset.value) : NaN;
    return Number.isNaN(v) ? null : v;
  };
  rows.sort((a, b) => {
    const x = value(a);
    const y = value(b);
    if (x === null && y === null) return 0;
    if (x === null) return 1; // entries without a value go last either way
    if (y === null) return -1;
    return descending ? y - x : x - y;
  });
  for (const row of rows) body.appendChild(row);
}

function filterTable(input) {
  const table = document.getElementById(input.dataset.table);
  const needle = input.value.trim().toLowerCase();
  for (const row of table.tBodies[0].rows) {
    row.hidden = needle !== "" && !(row.dataset.entry || "").toLowerCase().includes(needle);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("th button.sort")) {
    button.addEventListener("click", () => sortTable(button.closest("th")));
  }
  for (const input of document.querySelectorAll("input.filter-input")) {
    input.closest(".filter").hidden = false;
    input.addEventListener("input", () => filterTable(input));
  }
});
