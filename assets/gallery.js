// Lumiku Local: the gallery of a project page. Viewer (lightbox), compare, selection with bulk
// actions, favourites, filters and paging. Uses window.Lumiku from app.js (loaded first).
"use strict";

(() => {
  const L = window.Lumiku;
  if (!L) return;
})();
