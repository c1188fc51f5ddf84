from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from webapp.auth import bp
from webapp.auth.forms import ForgotPasswordForm, LoginForm, NewPasswordForm, SignupForm
from webapp.domain import users
from webapp.extensions import limiter

AUTH_LIMIT = "10 per minute"


def safe_next(target: str | None) -> str:
    """Only same-site paths: no scheme, no host, no protocol-relative `//` or `\\`."""
    if not target:
        return url_for("credits.index")
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or not target.startswith("/")
        or target.startswith(("//", "/\\"))
    ):
        return url_for("credits.index")
    return target


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(AUTH_LIMIT, methods=["POST"])
def signup():
    if current_user.is_authenticated:
        return redirect(url_for("credits.index"))
    form = SignupForm()
    if form.validate_on_submit():
        try:
            user = users.create_user(form.email.data, form.password.data)
        except users.EmailTakenError as exc:
            form.email.errors.append(str(exc))
        else:
            login_user(user)
            flash(
                "Welcome! Your account is ready. We mailed you a link to confirm your address.",
                "success",
            )
            return redirect(url_for("credits.index"))
    status = 400 if request.method == "POST" else 200
    return render_template("auth/signup.html", form=form), status


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(AUTH_LIMIT, methods=["POST"])
def login():
    form = LoginForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        user = users.find_by_email(form.email.data)
        if user is not None and user.check_password(form.password.data):
            login_user(user)
            return redirect(safe_next(form.next.data))
        form.password.errors.append("Wrong email or password.")
    status = 400 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


# --- forgotten passwords and email verification

FORGOT_ANSWER = (
    "If that address has an account, we have sent it a link to choose a new "
    "password. It works for one hour."
)


@bp.route("/forgot", methods=["GET", "POST"])
@limiter.limit(AUTH_LIMIT, methods=["POST"])
def forgot():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        # Known or not, the same work and the same page (no account enumeration).
        users.request_password_reset(form.email.data)
        return render_template(
            "auth/forgot.html", form=ForgotPasswordForm(formdata=None), sent=FORGOT_ANSWER
        )
    status = 400 if request.method == "POST" else 200
    return render_template("auth/forgot.html", form=form, sent=None), status


@bp.route("/reset/<token>", methods=["GET", "POST"])
@limiter.limit(AUTH_LIMIT, methods=["POST"])
def reset(token: str):
    form = NewPasswordForm()
    try:
        users.user_for_reset_token(token)
        if form.validate_on_submit():
            user = users.reset_password(token, form.password.data)
            login_user(user)
            flash("Your password is changed; any other sessions were logged out.", "success")
            return redirect(url_for("credits.index"))
    except users.InvalidLinkError as exc:
        return render_template("auth/reset.html", form=None, error=str(exc)), 400
    status = 400 if request.method == "POST" else 200
    return render_template("auth/reset.html", form=form, error=None), status


@bp.get("/verify/<token>")
def verify(token: str):
    try:
        users.verify_email(token)
    except users.InvalidLinkError as exc:
        return render_template("auth/verify.html", error=str(exc)), 400
    flash("Thank you: your email address is confirmed.", "success")
    return redirect(url_for("credits.index"))


@bp.post("/verify/resend")
@login_required
@limiter.limit(AUTH_LIMIT)
def verify_resend():
    if users.resend_verification(current_user):
        flash(f"We sent a new confirmation link to {current_user.email}.", "info")
    return redirect(safe_next(request.form.get("next")), code=303)
