-- Fails when a rage burst is larger than its page's clicks (the symptom of summing EventModFrustrated).
select p.page_key, p.clicks, f.burst_clicks
from {{ ref('fs_frustrations') }} as f
join {{ ref('fs_page_views') }} as p on p.page_key = f.page_key
where f.kind = 'rage' and (f.burst_clicks < 1 or p.rage_clicks > p.clicks)
