{#- One row per session (session_key = UserId:SessionId): who, when, how long, how active, which pages, on what
    device and where, how frustrated, and FullStory's replay link. Built from fs_page_views; session_date is the
    UTC day the session started (a session that spans midnight belongs to its first day). Incremental: every
    session with a page seen since the cutoff is rebuilt from all its pages. -#}
{{ config(unique_key='session_key') }}
{%- set user_vars = var('fullstory_user_vars') %}

with pages as (
    {{ fs_rows_to_model(ref('fs_page_views'), 'last_event_at', key='session_key') }}
),

ordered as (
    select
        pages.*,
        row_number() over (partition by session_key order by page_started_at, first_event_at, page_key) as n_from_start,
        row_number() over (partition by session_key order by page_started_at desc, first_event_at desc, page_key desc)
            as n_from_end
    from pages
)

select
    session_key,
    max(user_id) as user_id,
    max(session_id) as session_id,
    max(case when n_from_end = 1 then indv_id end) as indv_id,
    min(first_event_at) as started_at,
    max(page_ended_at) as ended_at,
    max(last_event_at) as last_event_at,
    cast(min(first_event_at) as date) as session_date,
    {{ fs_ms_between('min(first_event_at)', 'max(page_ended_at)') }} as duration_ms,
    {{ fs_sum('active_ms') }} as active_ms,
    count(*) as pages,
    count(distinct page_url) as unique_urls,
    {{ fs_sum('events') }} as events,
    max(case when n_from_start = 1 then page_url end) as entry_page_url,
    max(case when n_from_end = 1 then page_url end) as exit_page_url,
    max(case when n_from_start = 1 then page_referrer_url end) as referrer_url,
    max(case when n_from_start = 1 then device end) as device,
    max(case when n_from_start = 1 then browser end) as browser,
    max(case when n_from_start = 1 then browser_version end) as browser_version,
    max(case when n_from_start = 1 then operating_system end) as operating_system,
    max(case when n_from_start = 1 then platform end) as platform,
    max(case when n_from_start = 1 then ip end) as ip,
    max(case when n_from_start = 1 then lat_long end) as lat_long,
    max(case when n_from_end = 1 then user_app_key end) as user_app_key,
    max(case when n_from_end = 1 then user_email end) as user_email,
    max(case when n_from_end = 1 then user_display_name end) as user_display_name,
    {%- for name in user_vars %}
    max(case when n_from_end = 1 then {{ name | lower }} end) as {{ name | lower }},
    {%- endfor %}
    {{ fs_sum('clicks') }} as clicks,
    {{ fs_sum('rage_clicks') }} as rage_clicks,
    {{ fs_sum('dead_clicks') }} as dead_clicks,
    {{ fs_sum('error_clicks') }} as error_clicks,
    {{ fs_sum('error_events') }} as error_events,
    {{ fs_sum('suspicious_events') }} as suspicious_events,
    {{ fs_sum('failed_requests') }} as failed_requests,
    {{ fs_sum('custom_events') }} as custom_events,
    {{ fs_replay_url('max(user_id)', 'max(session_id)') }} as replay_url
from ordered
group by session_key
