-- Where a call was transferred (the Refer-To of its REFER), so that a blind transfer can be
-- followed from its first leg as well as back from the new one (parent_transaction_id).
ALTER TABLE recordings ADD COLUMN referred_to TEXT;
