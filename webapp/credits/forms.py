from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import InputRequired, Optional


class BuyForm(FlaskForm):
    # A string, so "abc" or "1.5" gets our own clear message rather than WTForms' one.
    credits = StringField("Credits", validators=[InputRequired("Enter a number of credits.")])
    # A Price pack's Stripe Price id; when given, `credits` is not needed.
    pack = StringField("Pack", validators=[Optional()])

    def validate(self, extra_validators=None) -> bool:
        if self.pack.data:
            self.credits.validators = [Optional()]
        return super().validate(extra_validators)
