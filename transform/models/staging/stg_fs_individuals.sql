{#- One row per IndvId from the optional `individuals` stream, typed. When the table is not loaded (the stream is
    opt-in for the bare tap), the view exists with the same columns and no rows, so fs_users works either way. -#}
{%- set loaded = fs_source_exists('individuals') -%}

select
{%- if loaded %}
    cast({{ fs_col('IndvId') }} as {{ dbt.type_bigint() }}) as indv_id,
    cast({{ fs_col('Created') }} as {{ dbt.type_timestamp() }}) as fs_created_at,
    cast({{ fs_col('Uid') }} as {{ dbt.type_string() }}) as fs_uid,
    cast({{ fs_col('DisplayName') }} as {{ dbt.type_string() }}) as fs_display_name,
    cast({{ fs_col('Email') }} as {{ dbt.type_string() }}) as fs_email,
    cast({{ fs_col('NumSessions') }} as {{ dbt.type_bigint() }}) as fs_num_sessions,
    cast({{ fs_col('NumPages') }} as {{ dbt.type_bigint() }}) as fs_num_pages,
    cast({{ fs_col('NumEvents') }} as {{ dbt.type_bigint() }}) as fs_num_events,
    cast({{ fs_col('TotalSec') }} as {{ dbt.type_float() }}) as fs_total_sec,
    cast({{ fs_col('ActiveSec') }} as {{ dbt.type_float() }}) as fs_active_sec,
    cast({{ fs_col('LastEventStart') }} as {{ dbt.type_timestamp() }}) as fs_last_event_at
from {{ source('fullstory', 'individuals') }}
{%- else %}
    cast(null as {{ dbt.type_bigint() }}) as indv_id,
    cast(null as {{ dbt.type_timestamp() }}) as fs_created_at,
    cast(null as {{ dbt.type_string() }}) as fs_uid,
    cast(null as {{ dbt.type_string() }}) as fs_display_name,
    cast(null as {{ dbt.type_string() }}) as fs_email,
    cast(null as {{ dbt.type_bigint() }}) as fs_num_sessions,
    cast(null as {{ dbt.type_bigint() }}) as fs_num_pages,
    cast(null as {{ dbt.type_bigint() }}) as fs_num_events,
    cast(null as {{ dbt.type_float() }}) as fs_total_sec,
    cast(null as {{ dbt.type_float() }}) as fs_active_sec,
    cast(null as {{ dbt.type_timestamp() }}) as fs_last_event_at
where 1 = 0
{%- endif %}
