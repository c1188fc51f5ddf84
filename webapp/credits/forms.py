from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import InputRequired


class BuyForm(FlaskForm):
    # A string, so "abc" or "1.5" gets our own clear message rather than WTForms' one.
    credits = StringField("Credits", validators=[InputRequired("Enter a number of credits.")])
