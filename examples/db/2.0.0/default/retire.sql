-- Runs inside version 2.0.0's transaction: if anything in the version fails, this is
-- undone too. Plain (unquoted, lower-case) names read the same on every engine.
UPDATE customer SET status = 'retired' WHERE code = 'C003' AND tenant_id = '/default';
