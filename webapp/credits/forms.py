from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField
from wtforms.validators import InputRequired, Optional


class BuyForm(FlaskForm):
    # A string, so "abc" or "1.5" gets our own clear message rather than WTForms' one.
    credits = StringField("Credits", validators=[InputRequired("Enter a number of credits.")])
    # A Price pack's Stripe Price id; when given, `credits` is not needed.
    pack = StringField("Pack", validators=[Optional()])
    save_card = BooleanField("Save this card for auto-recharge")

    def validate(self, extra_validators=None) -> bool:
        if self.pack.data:
            self.credits.validators = [Optional()]
        return super().validate(extra_validators)


class AutoRechargeForm(FlaskForm):
    # Strings for the same reason as BuyForm: the domain gives the clear messages.
    enabled = BooleanField("Recharge automatically")
    threshold = StringField("When my balance falls below (credits)")
    amount = StringField("Buy this many credits")
    monthly_limit = StringField("At most this much per month")
