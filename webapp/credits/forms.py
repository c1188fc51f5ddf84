from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField
from wtforms.validators import InputRequired


class BuyForm(FlaskForm):
    # A string, so "abc" or "1.5" gets our own clear message rather than WTForms' one.
    credits = StringField("Credits", validators=[InputRequired("Enter a number of credits.")])
    save_card = BooleanField("Save this card for auto-recharge")


class AutoRechargeForm(FlaskForm):
    # Strings for the same reason as BuyForm: the domain gives the clear messages.
    enabled = BooleanField("Recharge automatically")
    threshold = StringField("When my balance falls below (credits)")
    amount = StringField("Buy this many credits")
    monthly_limit = StringField("At most this much per month")
