{#- One row per frustration signal: kind 'rage' (one row per burst of rage clicks, on its first click;
    burst_clicks = its size), 'dead' (a click that changed nothing: EventModDead), 'error' (a click followed by an
    error: EventModError on a click) and 'suspicious' (input that looked like SQL injection (1) or XSS (2):
    EventModSuspicious, any event). With page, target text and selector. Incremental: every page with an event since
    the cutoff is rebuilt whole (a burst needs its page's earlier clicks). -#}
{{ config(unique_key='frustration_id') }}

with events as (
    {{ fs_rows_to_model(ref('stg_fs_events'), 'event_at', key='page_key') }}
),

bursts as (
    {{ fs_rage_bursts('events') }}
),

signals as (
    select 'rage' as kind, event_id, page_key, burst_started_at as event_at, burst_clicks,
           event_target_text, event_target_selector, cast(null as {{ dbt.type_bigint() }}) as detail_code
    from bursts
    union all
    select 'dead', event_id, page_key, event_at, 1, event_target_text, event_target_selector, mod_dead
    from events where event_type = 'click' and mod_dead > 0
    union all
    select 'error', event_id, page_key, event_at, 1, event_target_text, event_target_selector, mod_error
    from events where event_type = 'click' and mod_error > 0
    union all
    select 'suspicious', event_id, page_key, event_at, 1, event_target_text, event_target_selector, mod_suspicious
    from events where mod_suspicious > 0
),

pages as (
    select page_key, max(session_key) as session_key, max(indv_id) as indv_id, max(page_url) as page_url
    from events
    group by page_key
)

select
    {{ dbt.concat(['signals.kind', "':'", 'signals.event_id']) }} as frustration_id,
    signals.kind,
    signals.event_id,
    signals.page_key,
    pages.session_key,
    pages.indv_id,
    signals.event_at,
    cast(signals.event_at as date) as event_date,
    pages.page_url,
    signals.event_target_text,
    signals.event_target_selector,
    signals.burst_clicks,
    signals.detail_code
from signals
join pages on pages.page_key = signals.page_key
