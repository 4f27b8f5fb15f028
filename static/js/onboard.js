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
