from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import Length

from webapp.domain.text import clean_text


class ApiKeyForm(FlaskForm):
    label = StringField("Label", filters=[clean_text], validators=[Length(max=100)])
