from flask_wtf import FlaskForm
from wtforms import IntegerField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange

from webapp.domain.text import clean_text

# The ledger's credit columns are 64-bit; anything beyond is a typo, never an amount.
CREDITS_LIMIT = 10**12


class AdjustForm(FlaskForm):
    credits = IntegerField(
        "Credits (+ to add, − to remove)",
        validators=[
            InputRequired(),
            NumberRange(
                min=-CREDITS_LIMIT,
                max=CREDITS_LIMIT,
                message="Enter at most 1,000,000,000,000 credits either way.",
            ),
        ],
    )
    reason = StringField(
        "Reason (shown to the customer in their history)",
        filters=[clean_text],
        validators=[DataRequired(), Length(max=500)],
    )


class RefundForm(FlaskForm):
    amount = StringField(
        "Amount (empty = everything not yet refunded)", validators=[Length(max=20)]
    )


class ReviewCreditForm(FlaskForm):
    reason = StringField("Why it is credited", validators=[DataRequired(), Length(max=500)])
