-- Fails when a session's page count or event count differs from its page views'.
select s.session_key, s.pages, s.events, p.pages as page_views, p.events as page_view_events
from {{ ref('fs_sessions') }} as s
join (
    select session_key, count(*) as pages, sum(events) as events
    from {{ ref('fs_page_views') }}
    group by session_key
) as p on p.session_key = s.session_key
where s.pages <> p.pages or s.events <> p.events
