// Live total for the custom amount on the credits page; the server re-prices at checkout.
(function () {
  "use strict";
  const form = document.getElementById("custom-form");
  if (!form) return;
  const input = document.getElementById("custom-credits");
  const total = document.getElementById("custom-total");
  const feeNote = document.getElementById("custom-fee");
  const unit = parseInt(form.dataset.unit, 10);
  const currency = form.dataset.currency;
  const perMajor = parseInt(form.dataset.perMajor, 10);  // from pricing.py: 1, 100 or 1000
  const fees = form.dataset.fees === "true";
  const percent = parseFloat(form.dataset.feePercent);
  const fixed = parseInt(form.dataset.feeFixed, 10);
  const min = parseInt(form.dataset.min, 10);
  const max = parseInt(form.dataset.max, 10);

  // The server's format (pricing.format_money): "1,234.50 USD", so both read alike.
  function money(minor) {
    const sign = minor < 0 ? "-" : "";
    const whole = Math.floor(Math.abs(minor) / perMajor).toLocaleString("en-US");
    const cents = perMajor === 1 ? "" : "." + String(Math.abs(minor) % perMajor).padStart(2, "0");
    return sign + whole + cents + " " + currency.toUpperCase();
  }

  function update() {
    const credits = Number(input.value);
    if (!Number.isInteger(credits) || credits < min || credits > max) {
      total.textContent = input.value ? "enter " + min.toLocaleString() + "–" + max.toLocaleString() + " credits" : "—";
      feeNote.textContent = "";
      return;
    }
    const value = credits * unit;
    // Same rule as the server: the smallest total that leaves `value` after the fee.
    const amount = fees ? Math.ceil(((value + fixed) * 1000) / (1000 - percent * 10)) : value;
    total.textContent = money(amount);
    feeNote.textContent = fees ? "incl. " + money(amount - value) + " processing fee" : "";
  }

  input.addEventListener("input", update);
  update();
})();

// Forms that cannot be undone (revoke a key, refund a payment) ask first.
document.addEventListener("submit", function (event) {
  "use strict";
  const message = event.target.dataset && event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
