from django import forms
from django.conf import settings
from django.contrib.auth.password_validation import validate_password

from opsconsole.accounts.models import Role, User


class UserCreateForm(forms.ModelForm):
    password = forms.CharField(
        widget=forms.PasswordInput,
        help_text=f"At least {settings.PASSWORD_MIN_LENGTH} characters, not only digits, "
        "not a common password and not like the username or email.",
    )

    class Meta:
        model = User
        fields = ["username", "email", "role"]

    def clean_password(self):
        password = self.cleaned_data["password"]
        # The similarity check needs the user the password is for.
        candidate = User(
            username=self.cleaned_data.get("username", ""),
            email=self.cleaned_data.get("email", ""),
        )
        validate_password(password, candidate)
        return password

    def save(self, commit: bool = True) -> User:
        user = super().save(commit=False)
        user.set_password(self.cleaned_data["password"])
        if commit:
            user.save()
        return user


class UserEditForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ["email", "role", "is_active"]
        labels = {"is_active": "Can log in"}

    role = forms.ChoiceField(choices=Role.choices, required=False)
