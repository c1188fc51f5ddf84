from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from webapp.auth import bp
from webapp.auth.forms import LoginForm, SignupForm
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
            flash("Welcome! Your account is ready.", "success")
            return redirect(url_for("credits.index"))
    status = 400 if request.method == "POST" else 200
    return render_template("auth/signup.html", form=form), status


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(AUTH_LIMIT, methods=["POST"])
def login():
    form = LoginForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        user = users.authenticate(form.email.data, form.password.data)
        if user is not None:
            login_user(user)
            return redirect(safe_next(form.next.data))
        form.password.errors.append("Wrong email or password.")
    status = 400 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
@login_required
def logout():
    users.end_sessions(current_user)  # a copied cookie dies with this one
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
