import csv
import io
import re
from datetime import date

from flask import (
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user

from webapp.admin import bp
from webapp.admin.forms import RefundForm, ReviewCreditForm
from webapp.domain import admin_ops, admin_reports, pricing, receipts
from webapp.domain.errors import InvalidAmountError, NotUnderReviewError, PaymentProviderError
from webapp.extensions import db
from webapp.hardening import cursor_arg
from webapp.models import Purchase, PurchaseSource, PurchaseStatus

CSV_COLUMNS = (
    "id",
    "created_at",
    "email",
    "status",
    "credits",
    "amount",
    "fee",
    "tax",
    "currency",
    "amount_refunded",
    "credits_refunded",
    "credits_disputed",
    "stripe_checkout_session_id",
    "stripe_payment_intent_id",
    "review_reason",
    "stripe_price_id",
    "receipt_url",
    "invoice_url",
)


SOURCE_WORDS = {PurchaseSource.CHECKOUT: "Checkout", PurchaseSource.AUTO_RECHARGE: "Auto-recharge"}


def _date_arg(name: str) -> date | None:
    try:
        return date.fromisoformat(request.args.get(name, "").strip())
    except ValueError:
        return None


def purchase_filter() -> admin_reports.PurchaseFilter:
    status = request.args.get("status", "")
    source = request.args.get("source", "")
    return admin_reports.PurchaseFilter(
        status=status if status in tuple(PurchaseStatus) else "",
        q=request.args.get("q", ""),
        source=source if source in tuple(PurchaseSource) else "",
        start=_date_arg("from"),
        end=_date_arg("to"),
    )


def filter_args(filters: admin_reports.PurchaseFilter) -> dict[str, str]:
    args = {
        "status": filters.status,
        "source": filters.source,
        "q": filters.q.strip(),
        "from": filters.start.isoformat() if filters.start else "",
        "to": filters.end.isoformat() if filters.end else "",
    }
    return {name: value for name, value in args.items() if value}


@bp.get("/purchases")
def purchase_list():
    filters = purchase_filter()
    before = cursor_arg()
    page = admin_reports.purchases_admin_page(
        filters, before, current_app.config["HISTORY_PAGE_SIZE"]
    )
    return render_template(
        "admin/purchases.html",
        page=page,
        filters=filters,
        before=before,
        args=filter_args(filters),
        statuses=tuple(PurchaseStatus),
        sources=SOURCE_WORDS,
    )


@bp.get("/purchases.csv")
def purchases_csv():
    filters = purchase_filter()

    def rows():
        yield _csv_line(CSV_COLUMNS)
        for batch in admin_reports.purchases_in_batches(filters):
            yield "".join(_csv_line(_csv_row(purchase)) for purchase in batch)

    return Response(
        stream_with_context(rows()),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f"attachment; filename=purchases-{date.today().isoformat()}.csv"
        },
    )


def _csv_line(values) -> str:
    out = io.StringIO()
    csv.writer(out).writerow([spreadsheet_safe(value) for value in values])
    return out.getvalue()


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def spreadsheet_safe(value):
    """OWASP's rule against CSV formula injection: text a spreadsheet would run as a
    formula (starting with = + - @, tab or CR) gets a leading apostrophe; numbers stay."""
    if (
        isinstance(value, str)
        and value.startswith(_FORMULA_START)
        and not _PLAIN_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value


def _csv_row(p: Purchase) -> tuple:
    return (
        p.id,
        p.created_at.isoformat(),
        p.user.email,
        p.status,
        p.credits,
        _major(p.amount_cents, p.currency),
        _major(p.fee_cents, p.currency),
        _major(p.tax_cents, p.currency),
        p.currency,
        _major(p.amount_refunded_cents, p.currency),
        p.credits_refunded,
        p.credits_disputed,
        p.stripe_checkout_session_id or "",
        p.stripe_payment_intent_id or "",
        p.review_reason or "",
        p.stripe_price_id or "",
        *((p.receipt_url or "", p.invoice_url or "") if p.credited_at else ("", "")),
    )


_major = pricing.format_major


def render_purchase(
    purchase: Purchase,
    form: RefundForm,
    status: int = 200,
    review_form: ReviewCreditForm | None = None,
):
    return render_template(
        "admin/purchase_detail.html",
        purchase=purchase,
        form=form,
        review_form=review_form or ReviewCreditForm(formdata=None),
        refundable=admin_ops.refundable_cents(purchase),
        actions=admin_reports.admin_actions_for(admin_ops.AdminTarget.PURCHASE, purchase.id),
    ), status


@bp.get("/purchases/<int:purchase_id>")
def purchase_detail(purchase_id: int):
    purchase = db.get_or_404(Purchase, purchase_id)
    if receipts.fill_missing([purchase]):
        db.session.refresh(purchase)
    return render_purchase(purchase, RefundForm(formdata=None))


@bp.post("/purchases/<int:purchase_id>/refund")
def purchase_refund(purchase_id: int):
    purchase = db.get_or_404(Purchase, purchase_id)
    form = RefundForm()
    if not form.validate_on_submit():
        return render_purchase(purchase, form, 400)
    try:
        refund = admin_ops.request_refund(current_user.id, purchase, form.amount.data or "")
    except InvalidAmountError as exc:
        form.amount.errors.append(str(exc))
        return render_purchase(purchase, form, 400)
    except PaymentProviderError as exc:
        flash(f"Stripe did not accept the refund: {exc}", "error")
        return render_purchase(purchase, form, 502)
    flash(
        f"Refund {refund.get('id')} requested from Stripe; the credits are taken back "
        "when Stripe confirms it (charge.refunded).",
        "success",
    )
    return redirect(url_for("admin.purchase_detail", purchase_id=purchase.id), code=303)


@bp.post("/purchases/<int:purchase_id>/review/credit")
def purchase_review_credit(purchase_id: int):
    """Under review, and the money did arrive: credit the recorded credits (audited)."""
    purchase = db.get_or_404(Purchase, purchase_id)
    form = ReviewCreditForm()
    if not form.validate_on_submit():
        return render_purchase(purchase, RefundForm(formdata=None), 400, form)
    try:
        admin_ops.credit_reviewed(current_user.id, purchase, form.reason.data)
    except (NotUnderReviewError, InvalidAmountError) as exc:
        form.reason.errors.append(str(exc))
        return render_purchase(purchase, RefundForm(formdata=None), 400, form)
    except PaymentProviderError as exc:
        flash(f"Stripe could not be asked about the payment: {exc}", "error")
        return render_purchase(purchase, RefundForm(formdata=None), 502, form)
    flash(f"{purchase.credits:,} credits credited to {purchase.user.email}.", "success")
    return redirect(url_for("admin.purchase_detail", purchase_id=purchase.id), code=303)


@bp.post("/purchases/<int:purchase_id>/review/refund")
def purchase_review_refund(purchase_id: int):
    """Under review, and it should not stand: Stripe refunds all of it (audited)."""
    purchase = db.get_or_404(Purchase, purchase_id)
    form = ReviewCreditForm(formdata=None)
    try:
        refund = admin_ops.refund_reviewed(current_user.id, purchase)
    except (NotUnderReviewError, InvalidAmountError) as exc:
        form.reason.errors = [str(exc)]
        return render_purchase(purchase, RefundForm(formdata=None), 400, form)
    except PaymentProviderError as exc:
        flash(f"Stripe did not accept the refund: {exc}", "error")
        return render_purchase(purchase, RefundForm(formdata=None), 502, form)
    flash(
        f"Refund {refund.get('id')} requested from Stripe; the purchase shows refunded "
        "when Stripe confirms it.",
        "success",
    )
    return redirect(url_for("admin.purchase_detail", purchase_id=purchase.id), code=303)
