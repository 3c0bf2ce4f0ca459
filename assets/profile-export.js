// The avatar page's "Export for profiles": the preview follows the shape (a CSS circle clip) and
// the background (the transparent PNG, on a checkerboard), the one-size links carry the same
// choices, and the zip is not asked for without a size.
"use strict";

(() => {
  function start() {
    const form = document.querySelector("[data-profile-export]");
    if (!form) return;
    const preview = form.querySelector("[data-profile-preview]");
    const caption = form.querySelector("[data-profile-caption]");
    const transparent = form.querySelector("[data-profile-transparent]");
    const error = form.querySelector("[data-profile-error]");
    const oneUrl = form.dataset.oneUrl;

    function choices() {
      const shape = form.querySelector("input[name=shape]:checked")?.value || "square";
      const background = transparent?.checked ? "transparent" : "keep";
      return { shape, background };
    }

    function query(size, extra) {
      const { shape, background } = choices();
      const params = new URLSearchParams({ size: String(size), shape, background, ...extra });
      return `${oneUrl}?${params}`;
    }

    function update() {
      const { shape, background } = choices();
      preview.classList.toggle("circle", shape === "circle");
      preview.classList.toggle("see-through", background === "transparent");
      const wanted = query(320, { shape: "square", download: "false" });
      if (preview.getAttribute("src") !== wanted) preview.setAttribute("src", wanted);
      const words = [shape === "circle" ? "Circle" : "Square"];
      if (background === "transparent") words.push("transparent background");
      caption.textContent = words.join(", ");
      for (const link of form.querySelectorAll("[data-profile-one]")) {
        link.href = query(link.dataset.profileOne, {});
      }
    }

    form.addEventListener("change", (event) => {
      if (event.target.name === "size" && form.querySelector("input[name=size]:checked")) {
        error.hidden = true;
      }
      update();
    });
    form.addEventListener("submit", (event) => {
      const sizes = form.querySelectorAll("input[name=size]:checked").length;
      if (!sizes) {
        event.preventDefault();
        error.hidden = false;
        form.querySelector("input[name=size]").focus();
        return;
      }
      const pngs = `${sizes} PNG${sizes === 1 ? "" : "s"}`;
      window.Lumiku?.toast(`Your zip of ${pngs} is on its way to your downloads.`);
    });
    update();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
