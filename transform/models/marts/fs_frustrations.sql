{#- One row per frustration signal: kind 'rage' (one row per burst of rage clicks, on its first click;
    burst_clicks = its size), 'dead' (a click that changed nothing: EventModDead), 'error' (a click followed by an
    error: EventModError on a click) and 'suspicious' (input that looked like SQL injection (1) or XSS (2):
    EventModSuspicious, any event). With page, target text and selector. Incremental: every page with an event since
    the cutoff is rebuilt whole (a burst needs its page's earlier clicks). fs_page_views counts its rage rows. -#}
{{ config(unique_key='frustration_id') }}

with events as (
    {{ fs_rows_to_model(ref('stg_fs_events'), 'event_at', key='page_key') }}
),

bursts as (
    {{ fs_rage_bursts('events') }}
),

signals as (
    select 'rage' as kind, bursts.event_id, bursts.burst_clicks, cast(null as {{ dbt.type_bigint() }}) as detail_code
    from bursts
    union all
    select 'dead', event_id, 1, mod_dead from events where event_type = 'click' and mod_dead > 0
    union all
    select 'error', event_id, 1, mod_error from events where event_type = 'click' and mod_error > 0
    union all
    select 'suspicious', event_id, 1, mod_suspicious from events where mod_suspicious > 0
)

select
    {{ dbt.concat(['signals.kind', "':'", 'signals.event_id']) }} as frustration_id,
    signals.kind,
    signals.event_id,
    events.page_key,
    events.session_key,
    events.indv_id,
    events.event_at,
    events.event_date,
    events.page_url,
    events.event_target_text,
    events.event_target_selector,
    signals.burst_clicks,
    signals.detail_code
from signals
join events on events.event_id = signals.event_id
