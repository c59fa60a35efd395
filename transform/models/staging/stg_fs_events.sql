{#- One row per EventId: the loaded events, typed, snake_case, with a session key and a page key.

    Keys (docs/models.md, "Keys"): FullStory's SessionId is unique only within a UserId (one browser/device cookie),
    and PageId within a session, so session_key = UserId:SessionId (the id FullStory's replay links and APIs use)
    and page_key = UserId:SessionId:PageId. IndvId is not part of either: it can change after the fact when
    FullStory merges users into one individual.

    A re-exported window never double counts. target-duckdb, target-postgres, and target-snowflake / target-redshift
    as meltano.yml configures them (upsert) merge on EventId while loading, so the table already holds one row per
    EventId and this view is a plain projection (the unique test on event_id fails if that ever stops being true).
    Where the load appends (target-bigquery's default, or `fullstory_dedupe: true`), a row_number keeps the most
    recently exported copy; it is partitioned by (EventId, EventStart) -- EventStart is part of the EventId hash,
    so this is the same grouping -- so that a filter on event_at still reaches the table scan.
-#}

{%- set dedupe = var('fullstory_dedupe', none) %}
{%- if dedupe is none %}{% set dedupe = target.type == 'bigquery' %}{% endif %}

with typed as (
    select
        cast({{ fs_col('EventId') }} as {{ dbt.type_string() }}) as event_id,
        cast({{ fs_col('EventStart') }} as {{ dbt.type_timestamp() }}) as event_at,
        cast({{ fs_col('IndvId') }} as {{ dbt.type_bigint() }}) as indv_id,
        cast({{ fs_col('UserId') }} as {{ dbt.type_bigint() }}) as user_id,
        cast({{ fs_col('SessionId') }} as {{ dbt.type_bigint() }}) as session_id,
        cast({{ fs_col('PageId') }} as {{ dbt.type_bigint() }}) as page_id,
        cast({{ fs_col('UserCreated') }} as {{ dbt.type_timestamp() }}) as user_created_at,
        cast({{ fs_col('UserAppKey') }} as {{ dbt.type_string() }}) as user_app_key,
        cast({{ fs_col('UserDisplayName') }} as {{ dbt.type_string() }}) as user_display_name,
        cast({{ fs_col('UserEmail') }} as {{ dbt.type_string() }}) as user_email,
        cast({{ fs_col('EventType') }} as {{ dbt.type_string() }}) as event_type,
        cast({{ fs_col('EventSubType') }} as {{ dbt.type_string() }}) as event_sub_type,
        cast({{ fs_col('EventCustomName') }} as {{ dbt.type_string() }}) as event_custom_name,
        cast({{ fs_col('EventTargetText') }} as {{ dbt.type_string() }}) as event_target_text,
        cast(coalesce({{ fs_col('EventTargetSelector') }}, {{ fs_col('EventTargetSelectorTok') }}) as {{ dbt.type_string() }}) as event_target_selector,  -- legacy bundles: ...Tok
        cast({{ fs_col('EventPageOffset') }} as {{ dbt.type_bigint() }}) as event_page_offset_ms,
        cast({{ fs_col('EventSessionOffset') }} as {{ dbt.type_bigint() }}) as event_session_offset_ms,
        cast({{ fs_col('EventModFrustrated') }} as {{ dbt.type_bigint() }}) as mod_frustrated,
        cast({{ fs_col('EventModDead') }} as {{ dbt.type_bigint() }}) as mod_dead,
        cast({{ fs_col('EventModError') }} as {{ dbt.type_bigint() }}) as mod_error,
        cast({{ fs_col('EventModSuspicious') }} as {{ dbt.type_bigint() }}) as mod_suspicious,
        cast({{ fs_col('EventVarErrorKind') }} as {{ dbt.type_string() }}) as var_error_kind,
        cast({{ fs_col('EventVarFields') }} as {{ dbt.type_string() }}) as var_fields,
        cast({{ fs_col('EventWebSourceFileUrl') }} as {{ dbt.type_string() }}) as web_source_file_url,
        cast({{ fs_col('EventFirstInputDelay') }} as {{ dbt.type_bigint() }}) as first_input_delay_ms,
        cast({{ fs_col('EventCumulativeLayoutShift') }} as {{ dbt.type_float() }}) as cumulative_layout_shift,
        cast({{ fs_col('SessionStart') }} as {{ dbt.type_timestamp() }}) as session_start,
        cast({{ fs_col('PageName') }} as {{ dbt.type_string() }}) as page_name,
        cast({{ fs_col('PageStart') }} as {{ dbt.type_timestamp() }}) as page_start,
        cast({{ fs_col('PageDuration') }} as {{ dbt.type_bigint() }}) as page_duration_ms,
        cast({{ fs_col('PageActiveDuration') }} as {{ dbt.type_bigint() }}) as page_active_duration_ms,
        cast({{ fs_col('PageUrl') }} as {{ dbt.type_string() }}) as page_url,
        cast({{ fs_col('PageRefererUrl') }} as {{ dbt.type_string() }}) as page_referrer_url,
        cast({{ fs_col('PageIp') }} as {{ dbt.type_string() }}) as page_ip,
        cast({{ fs_col('PageLatLong') }} as {{ dbt.type_string() }}) as page_lat_long,
        cast(coalesce({{ fs_col('PageUserAgent') }}, {{ fs_col('PageAgent') }}) as {{ dbt.type_string() }}) as page_user_agent,  -- legacy bundles: PageAgent
        cast({{ fs_col('PageBrowser') }} as {{ dbt.type_string() }}) as page_browser,
        cast({{ fs_col('PageBrowserVersion') }} as {{ dbt.type_string() }}) as page_browser_version,
        cast({{ fs_col('PageDevice') }} as {{ dbt.type_string() }}) as page_device,
        cast({{ fs_col('PagePlatform') }} as {{ dbt.type_string() }}) as page_platform,
        cast({{ fs_col('PageOperatingSystem') }} as {{ dbt.type_string() }}) as page_operating_system,
        cast({{ fs_col('PageScreenWidth') }} as {{ dbt.type_bigint() }}) as page_screen_width,
        cast({{ fs_col('PageScreenHeight') }} as {{ dbt.type_bigint() }}) as page_screen_height,
        cast({{ fs_col('PageViewportWidth') }} as {{ dbt.type_bigint() }}) as page_viewport_width,
        cast({{ fs_col('PageViewportHeight') }} as {{ dbt.type_bigint() }}) as page_viewport_height,
        cast({{ fs_col('PageNumEvents') }} as {{ dbt.type_bigint() }}) as page_num_events,
        cast({{ fs_col('PageNumErrors') }} as {{ dbt.type_bigint() }}) as page_num_errors,
        cast({{ fs_col('PageNumWarnings') }} as {{ dbt.type_bigint() }}) as page_num_warnings,
        cast({{ fs_col('PageNumInfos') }} as {{ dbt.type_bigint() }}) as page_num_infos,
        cast({{ fs_col('PageClusterId') }} as {{ dbt.type_bigint() }}) as page_cluster_id,
        cast({{ fs_col('PageMaxScrollDepthPercent') }} as {{ dbt.type_bigint() }}) as page_max_scroll_depth_pct,
        cast({{ fs_col('LoadDomContentTime') }} as {{ dbt.type_bigint() }}) as load_dom_content_ms,
        cast({{ fs_col('LoadEventTime') }} as {{ dbt.type_bigint() }}) as load_event_ms,
        cast({{ fs_col('LoadFirstPaintTime') }} as {{ dbt.type_bigint() }}) as load_first_paint_ms,
        cast({{ fs_col('LoadLargestPaintTime') }} as {{ dbt.type_bigint() }}) as load_largest_paint_ms,
        cast({{ fs_col('ReqUrl') }} as {{ dbt.type_string() }}) as req_url,
        cast({{ fs_col('ReqMethod') }} as {{ dbt.type_string() }}) as req_method,
        cast({{ fs_col('ReqStatus') }} as {{ dbt.type_bigint() }}) as req_status,
        {{ fs_col('CustomVars') }} as custom_vars,
        cast({{ fs_col('ExportStart') }} as {{ dbt.type_timestamp() }}) as export_start,
        {%- if dedupe %}
        row_number() over (
            partition by {{ fs_col('EventId') }}, cast({{ fs_col('EventStart') }} as {{ dbt.type_timestamp() }})
            order by {{ fs_col('ExportStart') }} desc
        ) as copy_number
        {%- else %}
        1 as copy_number
        {%- endif %}
    from {{ source('fullstory', 'events') }}
)

select
    event_id,
    event_at,
    cast(event_at as date) as event_date,
    {{ dbt.concat(["cast(user_id as " ~ dbt.type_string() ~ ")", "':'", "cast(session_id as " ~ dbt.type_string() ~ ")"]) }} as session_key,
    {{ dbt.concat(["cast(user_id as " ~ dbt.type_string() ~ ")", "':'", "cast(session_id as " ~ dbt.type_string() ~ ")",
                   "':'", "cast(page_id as " ~ dbt.type_string() ~ ")"]) }} as page_key,
    case when page_start is not null and page_duration_ms is not null
         then {{ dbt.dateadd('millisecond', 'page_duration_ms', 'page_start') }} end as page_end,
    indv_id,
    user_id,
    session_id,
    page_id,
    user_created_at,
    user_app_key,
    user_display_name,
    user_email,
    event_type,
    event_sub_type,
    event_custom_name,
    event_target_text,
    event_target_selector,
    event_page_offset_ms,
    event_session_offset_ms,
    mod_frustrated,
    mod_dead,
    mod_error,
    mod_suspicious,
    var_error_kind,
    var_fields,
    web_source_file_url,
    first_input_delay_ms,
    cumulative_layout_shift,
    session_start,
    page_name,
    page_start,
    page_duration_ms,
    page_active_duration_ms,
    page_url,
    page_referrer_url,
    page_ip,
    page_lat_long,
    page_user_agent,
    page_browser,
    page_browser_version,
    page_device,
    page_platform,
    page_operating_system,
    page_screen_width,
    page_screen_height,
    page_viewport_width,
    page_viewport_height,
    page_num_events,
    page_num_errors,
    page_num_warnings,
    page_num_infos,
    page_cluster_id,
    page_max_scroll_depth_pct,
    load_dom_content_ms,
    load_event_ms,
    load_first_paint_ms,
    load_largest_paint_ms,
    req_url,
    req_method,
    req_status,
    custom_vars,
    export_start
from typed
{%- if dedupe %}
where copy_number = 1
{%- endif %}
