-- Every read filters prices by route and day range: index exactly that.
CREATE INDEX IF NOT EXISTS prices_orig_code_dest_code_day_idx
    ON public.prices (orig_code, dest_code, day);
