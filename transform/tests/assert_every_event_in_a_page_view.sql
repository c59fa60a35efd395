-- Fails when page views do not account for every staged event exactly once (events lost or counted twice).
select staged.n as staged_events, modelled.n as events_in_page_views
from (select count(*) as n from {{ ref('stg_fs_events') }}) as staged
cross join (select sum(events) as n from {{ ref('fs_page_views') }}) as modelled
where staged.n <> coalesce(modelled.n, 0)
