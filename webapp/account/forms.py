from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, InputRequired, Length, NumberRange

from webapp.domain.users import MIN_PASSWORD_LENGTH


class ApiKeyForm(FlaskForm):
    label = StringField("Label", validators=[Length(max=100)])


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(
        "Current password", validators=[DataRequired(), Length(max=200)]
    )
    password = PasswordField(
        "New password",
        validators=[
            DataRequired(),
            Length(
                min=MIN_PASSWORD_LENGTH,
                max=200,
                message=f"Use at least {MIN_PASSWORD_LENGTH} characters.",
            ),
        ],
    )
    confirm = PasswordField(
        "Repeat the new password",
        validators=[DataRequired(), EqualTo("password", message="The two passwords differ.")],
    )


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
