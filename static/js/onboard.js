// Show only the database fields that apply to the chosen isolation.
(function () {
  const form = document.getElementById("onboard-form");
  if (!form) return;
  function update() {
    const chosen = form.querySelector("input[name=isolation]:checked");
    const value = chosen ? chosen.value : "shared";
    form.querySelectorAll(".only-dedicated, .only-serverless, .only-shared").forEach((el) => {
      el.hidden = !el.classList.contains("only-" + value);
    });
  }
  form.addEventListener("change", update);
  update();
})();

// The slug is never cut short (no maxlength: a browser truncates a pasted one silently):
// a count as it is typed, and a warning once it is too long; the server refuses it too.
(function () {
  const input = document.querySelector("input[data-max-length]");
  if (!input) return;
  const max = Number(input.getAttribute("data-max-length"));
  const count = document.createElement("small");
  count.id = input.id + "_count";
  count.className = "muted count";
  count.setAttribute("aria-live", "polite");
  input.insertAdjacentElement("afterend", count);
  function update() {
    const n = input.value.trim().length;
    const over = n > max;
    count.textContent = over
      ? `${n} characters: ${n - max} too many (at most ${max}). Nothing is cut off; shorten it.`
      : `${n} of ${max} characters`;
    count.classList.toggle("warning", over);
    count.classList.toggle("muted", !over);
    input.setAttribute("aria-invalid", over || input.closest(".has-error") ? "true" : "false");
  }
  input.addEventListener("input", update);
  update();
})();
