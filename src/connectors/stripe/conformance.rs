pub(crate) struct StripeFixture;
