-- Sign-ins refused during a lockout, counted here rather than each written
-- to the audit log: someone typing on at a locked email would otherwise
-- grow the log by one event a try. The log gets the 1st, 2nd, 4th, 8th…
-- refusal of each lockout, with the count so far.
ALTER TABLE lockouts ADD COLUMN refused BIGINT NOT NULL DEFAULT 0;
