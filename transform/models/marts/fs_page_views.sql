{#- One row per page view (page_key = UserId:SessionId:PageId): URL, referrer, time on page, active time, scroll
    depth, load timings, errors and frustration counts. PageDuration, PageActiveDuration and the PageNum* counters
    repeat on every event of the page and may settle later, so the largest value seen is kept. Rage clicks are
    counted as bursts, not summed: the rage rows of fs_frustrations. Incremental: every page with an event since
    the cutoff is rebuilt whole (macros/fs_incremental.sql). -#}
{{ config(unique_key='page_key') }}

with events as (
    {{ fs_rows_to_model(ref('stg_fs_events'), 'event_at', key='page_key', this_ts_column='last_event_at') }}
),

rage_bursts as (
    select page_key, count(*) as rage_clicks, max(burst_clicks) as rage_click_max_burst
    from {{ ref('fs_frustrations') }}
    where kind = 'rage'
      {%- set cutoff = fs_cutoff('last_event_at') %}
      {%- if cutoff is not none %}
      and page_key in (select page_key from events)
      {%- endif %}
    group by page_key
),

{%- set user_vars = var('fullstory_user_vars') %}

pages as (
    select
        page_key,
        max(session_key) as session_key,
        max(user_id) as user_id,
        max(session_id) as session_id,
        max(page_id) as page_id,
        max(indv_id) as indv_id,
        coalesce(min(page_start), min(event_at)) as page_started_at,
        max(coalesce(page_end, event_at)) as page_ended_at,
        min(event_at) as first_event_at,
        max(event_at) as last_event_at,
        {{ dbt.any_value('page_url') }} as page_url,
        {{ dbt.any_value('page_name') }} as page_name,
        {{ dbt.any_value('page_referrer_url') }} as page_referrer_url,
        max(page_duration_ms) as duration_ms,
        max(page_active_duration_ms) as active_ms,
        max(page_max_scroll_depth_pct) as max_scroll_depth_pct,
        max(load_dom_content_ms) as load_dom_content_ms,
        max(load_event_ms) as load_event_ms,
        max(load_first_paint_ms) as load_first_paint_ms,
        max(load_largest_paint_ms) as load_largest_paint_ms,
        max(first_input_delay_ms) as first_input_delay_ms,
        max(cumulative_layout_shift) as cumulative_layout_shift,
        max(page_num_errors) as page_num_errors,
        max(page_num_warnings) as page_num_warnings,
        {{ dbt.any_value('page_browser') }} as browser,
        {{ dbt.any_value('page_browser_version') }} as browser_version,
        {{ dbt.any_value('page_device') }} as device,
        {{ dbt.any_value('page_platform') }} as platform,
        {{ dbt.any_value('page_operating_system') }} as operating_system,
        {{ dbt.any_value('page_user_agent') }} as user_agent,
        {{ dbt.any_value('page_ip') }} as ip,
        {{ dbt.any_value('page_lat_long') }} as lat_long,
        max(page_viewport_width) as viewport_width,
        max(page_viewport_height) as viewport_height,
        max(user_app_key) as user_app_key,
        max(user_email) as user_email,
        max(user_display_name) as user_display_name,
        {%- for name in user_vars %}
        max({{ fs_custom_var('custom_vars', name) }}) as {{ name | lower }},
        {%- endfor %}
        count(*) as events,
        {{ fs_sum(fs_flag("event_type = 'click'")) }} as clicks,
        {{ fs_sum(fs_flag("event_type = 'click' and mod_dead > 0")) }} as dead_clicks,
        {{ fs_sum(fs_flag("event_type = 'click' and mod_error > 0")) }} as error_clicks,
        {{ fs_sum(fs_flag("mod_error > 0")) }} as error_events,
        {{ fs_sum(fs_flag("mod_suspicious > 0")) }} as suspicious_events,
        {{ fs_sum(fs_flag("event_type = 'request' and req_status >= 400")) }} as failed_requests,
        {{ fs_sum(fs_flag("event_type = 'custom'")) }} as custom_events
    from events
    group by page_key
)

select
    pages.*,
    cast(pages.page_started_at as date) as page_date,
    coalesce(rage_bursts.rage_clicks, 0) as rage_clicks,
    coalesce(rage_bursts.rage_click_max_burst, 0) as rage_click_max_burst
from pages
left join rage_bursts on rage_bursts.page_key = pages.page_key
