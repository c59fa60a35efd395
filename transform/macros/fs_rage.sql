{#- Rage-click bursts, counted as FullStory means them. EventModFrustrated is a running count within a burst of
    clicks (1, 2, 3, ...), 0 on other clicks: summing it would count a 5-click burst as 15. A burst starts at a
    frustrated click whose count does not continue the previous click's on the same page (that one was 0, or its
    count was not lower). One row per burst: its first click's event id and time, and its size (the largest count).
    `events` is a CTE or relation of staged events holding whole pages. Only pages with a frustrated click are
    ordered (a few percent of them), on narrow rows; callers join the first click back for its text. -#}
{% macro fs_rage_bursts(events) -%}
select
    page_key,
    burst_number,
    max(case when is_burst_start = 1 then event_id end) as event_id,
    min(event_at) as burst_started_at,
    max(mod_frustrated) as burst_clicks
from (
    select
        flagged.*,
        sum(is_burst_start) over (
            partition by page_key order by event_at, event_page_offset_ms, event_id
            rows between unbounded preceding and current row
        ) as burst_number
    from (
        select
            ordered.*,
            case when mod_frustrated > 0
                      and (previous_count is null or previous_count <= 0 or mod_frustrated <= previous_count)
                 then 1 else 0 end as is_burst_start
        from (
            select
                page_key, event_id, event_at, event_page_offset_ms,
                coalesce(mod_frustrated, 0) as mod_frustrated,
                lag(coalesce(mod_frustrated, 0)) over (
                    partition by page_key order by event_at, event_page_offset_ms, event_id
                ) as previous_count
            from {{ events }}
            where event_type = 'click'
              and page_key in (select page_key from {{ events }} where event_type = 'click' and mod_frustrated > 0)
        ) as ordered
    ) as flagged
) as numbered
where mod_frustrated > 0
group by page_key, burst_number
{%- endmacro %}
