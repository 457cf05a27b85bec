from django.utils.functional import SimpleLazyObject

from stores.selectors import stores_for_user, user_is_head_office


def staff_role(request):
    """Navigation needs to know whether the user is head office and which stores they see.

    Lazy: a panel refreshing every two seconds renders no navigation and pays no query.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "is_head_office": SimpleLazyObject(lambda: user_is_head_office(user=user)),
        "my_stores": SimpleLazyObject(lambda: list(stores_for_user(user=user)[:50])),
    }
