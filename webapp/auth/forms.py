from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField, SubmitField
from wtforms.validators import DataRequired, Email, EqualTo, Length, ValidationError

from webapp.domain.text import clean_text
from webapp.domain.users import MAX_PASSWORD_LENGTH, PASSWORD_RULE, password_problem


def strip(value):
    return value.strip() if isinstance(value, str) else value


class SignupForm(FlaskForm):
    email = EmailField(
        "Email",
        filters=[clean_text, strip],
        validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)],
    )
    password = PasswordField(
        "Password",
        description=PASSWORD_RULE,
        validators=[DataRequired(), Length(max=MAX_PASSWORD_LENGTH)],
    )
    submit = SubmitField("Create account")

    def validate_password(self, field):
        problem = password_problem(field.data or "", self.email.data or "")
        if problem:
            raise ValidationError(problem)


class LoginForm(FlaskForm):
    email = EmailField(
        "Email", filters=[clean_text, strip], validators=[DataRequired(), Length(max=254)]
    )
    password = PasswordField(
        "Password", validators=[DataRequired(), Length(max=MAX_PASSWORD_LENGTH)]
    )
    next = HiddenField(filters=[clean_text])
    submit = SubmitField("Log in")


class ForgotPasswordForm(FlaskForm):
    email = EmailField(
        "Email",
        filters=[clean_text, strip],
        validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)],
    )
    submit = SubmitField("Send me a link")


class NewPasswordFields(FlaskForm):
    """A new password typed twice, checked against the password rule (reset, change)."""

    password = PasswordField(
        "New password",
        description=PASSWORD_RULE,
        validators=[DataRequired(), Length(max=MAX_PASSWORD_LENGTH)],
    )
    confirm = PasswordField(
        "Repeat the new password",
        validators=[DataRequired(), EqualTo("password", message="The two passwords differ.")],
    )

    email = ""  # the view sets the account's address, for the password rule

    def validate_password(self, field):
        problem = password_problem(field.data or "", self.email)
        if problem:
            raise ValidationError(problem)


class NewPasswordForm(NewPasswordFields):
    submit = SubmitField("Set password")
