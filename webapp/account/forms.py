from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, PasswordField, StringField
from wtforms.validators import (
    DataRequired,
    EqualTo,
    InputRequired,
    Length,
    NumberRange,
    ValidationError,
)

from webapp.domain.text import clean_text
from webapp.domain.users import MAX_PASSWORD_LENGTH, PASSWORD_RULE, password_problem


class ApiKeyForm(FlaskForm):
    label = StringField("Label", filters=[clean_text], validators=[Length(max=100)])


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(
        "Current password", validators=[DataRequired(), Length(max=200)]
    )
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


class NotificationsForm(FlaskForm):
    low_balance = BooleanField("Low balance: when my balance falls below the threshold")
    auto_recharge = BooleanField("Auto-recharge: charges made, failed or needing me")
    renewals = BooleanField("Plan renewals")
    low_balance_threshold = IntegerField(
        "Low-balance threshold (credits; 0 = never)",
        validators=[
            InputRequired(message="Enter a number of credits, 0 or more."),
            NumberRange(min=0, max=10**12, message="Enter a number of credits, 0 or more."),
        ],
    )
