from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import Length


class ApiKeyForm(FlaskForm):
    label = StringField("Label", validators=[Length(max=100)])
