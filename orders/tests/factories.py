import datetime

import factory
from django.utils import timezone

from orders.models import Launch


class LaunchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Launch
        django_get_or_create = ("slug",)
        skip_postgeneration_save = True

    slug = factory.Sequence(lambda n: f"launch-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    opens_at = factory.LazyFunction(lambda: timezone.now() - datetime.timedelta(hours=1))
    closes_at = factory.LazyFunction(lambda: timezone.now() + datetime.timedelta(days=7))

    @factory.post_generation
    def skus(self, create, extracted, **kwargs):
        if create and extracted:
            self.skus.set(extracted)
