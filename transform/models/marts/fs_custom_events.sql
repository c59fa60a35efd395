{#- One row per custom event (FS.event / FS('trackEvent')): its name and properties. `properties` is the event's
    CustomVars as JSON text: evt_* keys are the event's own properties (nested ones flattened with dots, e.g.
    evt_order.total_real), page_* and user_* keys the page's and user's variables at that moment. Read one with
    the fs_custom_var macro. custom_error rows (FullStory rejected a property) are kept with is_error = 1.
    Incremental on event time. -#}
{{ config(unique_key='event_id') }}

with events as (
    {{ fs_rows_to_model(ref('stg_fs_events'), 'event_at') }}
)

select
    {{ fs_event_context() }},
    event_custom_name as event_name,
    {{ fs_flag("event_type = 'custom_error'") }} as is_error,
    var_error_kind,
    var_fields,
    {{ fs_json_text('custom_vars') }} as properties
from events
where event_type in ('custom', 'custom_error')
