from stores.selectors import stores_for_user, user_is_head_office


def staff_role(request):
    """Navigation needs to know whether the user is head office and which stores they see."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "is_head_office": user_is_head_office(user=user),
        "my_stores": list(stores_for_user(user=user)[:50]),
    }
