from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, PasswordField, StringField
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
)

from webapp.auth.forms import NewPasswordFields
from webapp.domain.text import clean_text


class ApiKeyForm(FlaskForm):
    label = StringField("Label", filters=[clean_text], validators=[Length(max=100)])


class ChangePasswordForm(NewPasswordFields):
    current_password = PasswordField(
        "Current password", validators=[DataRequired(), Length(max=200)]
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
