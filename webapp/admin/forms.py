from flask_wtf import FlaskForm
from wtforms import IntegerField, StringField
from wtforms.validators import DataRequired, InputRequired, Length


class AdjustForm(FlaskForm):
    credits = IntegerField("Credits (+ to add, − to remove)", validators=[InputRequired()])
    reason = StringField("Reason", validators=[DataRequired(), Length(max=500)])


class RefundForm(FlaskForm):
    amount = StringField(
        "Amount (empty = everything not yet refunded)", validators=[Length(max=20)]
    )


class ReviewCreditForm(FlaskForm):
    reason = StringField("Why it is credited", validators=[DataRequired(), Length(max=500)])
